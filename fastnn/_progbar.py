"""Per-epoch progress lines for fit(verbose=1)."""
import sys


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def epoch_line(epoch, epochs, n_batches, seconds, logs):
    return (f"Epoch {epoch + 1}/{epochs} - {n_batches}/{n_batches} - {seconds:.2f}s"
            + (" - " + format_logs(logs) if logs else ""))


def write(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
