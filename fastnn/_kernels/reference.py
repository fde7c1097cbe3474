"""NumPy twins of the compiled kernels: same names, same arguments, same out-buffer contract.

These are the specification the compiled code is tested against, and the NumPy
baseline it is benchmarked against.  They are written for clarity first, but
vectorised (no Python loop over rows), so that they are also a fair baseline.
"""
from typing import Any

import numpy as np

from fastnn._kernels._shapes import geometry
from fastnn._kernels.dense import ACTIVATIONS, ROWS_FUSED
from fastnn._kernels.engine import LAYER_KINDS, OPTIMIZERS
from fastnn._kernels.losses import LOSSES, METRICS

_ACT = {code: name for name, code in ACTIVATIONS.items()}
_LOSS = {code: name for name, code in LOSSES.items()}
_METRIC = {code: name for name, code in METRICS.items()}


# ----------------------------------------------------------------------------- activations

def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _act_name(activation):
    if activation not in _ACT:
        raise ValueError(f"unknown activation code {activation}")
    return _ACT[activation]


def _act(z, activation, alpha):
    name = _act_name(activation)
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * z.dtype.type(alpha))
    if name == "swish":
        return z * _sigmoid(z)
    if name == "softmax":
        return _softmax(z)
    raise ValueError(f"unknown activation {name!r}")


def _act_grad(z, a, g, activation, alpha):
    name = _act_name(activation)
    if name == "linear":
        return g
    if name == "relu":
        return np.where(z > 0, g, 0)
    if name == "sigmoid":
        return g * (a * (1 - a))
    if name == "tanh":
        return g * (1 - a * a)
    if name == "leaky_relu":
        return np.where(z > 0, g, g * z.dtype.type(alpha))
    if name == "swish":
        s = _sigmoid(z)
        return g * (s * (1 + z * (1 - s)))
    if name == "softmax":
        return a * (g - (g * a).sum(axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {name!r}")


def activation_forward(z, activation, alpha, a_out):
    """a_out = act(z) (softmax over rows); shapes (n, m)."""
    a_out[...] = _act(z, activation, alpha)


# ----------------------------------------------------------------------------- dense

def _two_sum(x, y):
    """s + e == x + y exactly, s = fl(x + y) (Knuth's TwoSum)."""
    s = x + y
    bb = s - x
    return s, (x - (s - bb)) + (y - bb)


def _two_product(x, y):
    """p + e == x * y exactly, p = fl(x * y) (Dekker's product with Veltkamp's split)."""
    factor = x.dtype.type(4097.0 if x.dtype == np.float32 else 134217729.0)  # 2^ceil(p/2)+1

    def split(v):
        t = factor * v
        hi = t - (t - v)
        return hi, v - hi

    p = x * y
    xh, xl = split(x)
    yh, yl = split(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _fma(a, b, c):
    """a * b + c with one rounding, in plain IEEE arithmetic (Boldo and Melquiond's
    emulation: the exact product, an exact sum, a sum rounded to odd, a last rounding;
    exact for finite values away from overflow and underflow)."""
    uh, ul = _two_product(a, b)
    th, tl = _two_sum(c, uh)
    v, e = _two_sum(tl, ul)
    bits = v.view(np.int32 if v.dtype == np.float32 else np.int64)
    even = (bits & 1) == 0
    # round to odd: an inexact sum with an even last bit moves to its neighbour toward e
    v = np.where((e != 0) & even, np.nextafter(v, np.where(e > 0, np.inf, -np.inf).astype(
        v.dtype)), v)
    return th + v


def matmul(a, b, trans_a, trans_b, c_out, method="auto", beta=0.0):
    """c_out = op(a) @ op(b) + beta * c_out (every method is the same product here, and
    "rows" is its defining sum, bit-exact: c = 0; c = c + a[:, p] * b[p] for p ascending,
    as the compiled kernel computes each element: one rounding per term (an FMA) where
    the compiled kernel fuses on this CPU (ROWS_FUSED), a rounded product then a rounded
    sum elsewhere)."""
    if method == "rows":
        product = np.zeros((a.shape[0], b.shape[1]), dtype=c_out.dtype)
        for p in range(a.shape[1]):
            if ROWS_FUSED:
                product = _fma(np.broadcast_to(a[:, p:p + 1], product.shape),
                               np.broadcast_to(b[p], product.shape), product)
            else:
                product = product + a[:, p:p + 1] * b[p]
        c_out[...] = product
        return
    product = np.matmul(a.T if trans_a else a, b.T if trans_b else b)
    if beta == 0:  # c_out is only written, as BLAS specifies for beta = 0
        c_out[...] = product
    else:
        c_out[...] = product + c_out.dtype.type(beta) * c_out


def dense_forward(x, w, b, activation, alpha, z_out, a_out):
    """z_out = x @ w + b; a_out = act(z_out)."""
    np.matmul(x, w, out=z_out)
    if b is not None:
        z_out += b
    a_out[...] = _act(z_out, activation, alpha)


def dense_backward(x, w, z, a, da, activation, alpha, l2, dz_out, dw_out, db_out, dx_out, *,
                   l1=0.0, b=None, bias_l1=0.0, bias_l2=0.0):
    """dz = da * act'(z); dw = x^T dz + 2 l2 w + l1 sign(w); db = column sums of dz
    + 2 bias_l2 b + bias_l1 sign(b); dx = dz w^T."""
    if (bias_l1 != 0 or bias_l2 != 0) and (b is None or db_out is None):
        raise ValueError("dense_backward: a bias penalty needs b and db_out")
    t = w.dtype.type
    dz_out[...] = _act_grad(z, a, da, activation, alpha)
    np.matmul(x.T, dz_out, out=dw_out)
    if l1 != 0 or l2 != 0:
        dw_out += (2 * t(l2)) * w + t(l1) * np.sign(w)
    if db_out is not None:
        dz_out.sum(axis=0, out=db_out)
        if bias_l1 != 0 or bias_l2 != 0:
            db_out += (2 * t(bias_l2)) * b + t(bias_l1) * np.sign(b)
    if dx_out is not None:
        np.matmul(dz_out, w.T, out=dx_out)


# ----------------------------------------------------------------------------- convolution

def _padded(x, g, value=0.0):
    """x (n, h, w, c) padded as the window geometry `g` reads it."""
    h, w, _, kh, kw, sh, sw, pt, pl, oh, ow, _ = g
    pb, pr = max((oh - 1) * sh + kh - h - pt, 0), max((ow - 1) * sw + kw - w - pl, 0)
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _window(g, i, j):
    """Index of the (i, j) tap of every window in the padded input."""
    oh, ow, sh, sw = g[9], g[10], g[5], g[6]
    return (slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
            slice(j, j + sw * (ow - 1) + 1, sw), slice(None))


def _im2col(x, g):
    n, (c, kh, kw, oh, ow) = x.shape[0], (g[2], g[3], g[4], g[9], g[10])
    xp, cols = _padded(x, g), np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[_window(g, i, j)]
    return cols.reshape(n * oh * ow, kh * kw * c)


def _col2im(cols, g, n):
    h, w, c, kh, kw, _, _, pt, pl, oh, ow, _ = g
    dxp = np.zeros_like(_padded(np.zeros((n, h, w, c), cols.dtype), g))
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            dxp[_window(g, i, j)] += cols[:, :, :, i, j, :]
    return dxp[:, pt:pt + h, pl:pl + w, :]


def _conv_geometry(x, w, strides, padding):
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"kernel has {w.shape[2]} input channels, x has {x.shape[3]}")
    return geometry(x.shape[1:4], w.shape[:2], tuple(strides), padding, w.shape[3])


def conv_forward(x, w, b, strides, padding, activation, alpha, cols_out, z_out, a_out):
    """z_out = im2col(x) @ w + b, a_out = act(z_out); cols_out receives the windows."""
    g = _conv_geometry(x, w, strides, padding)
    cols_out[...] = _im2col(x, g)
    z = cols_out @ w.reshape(-1, w.shape[3])
    if b is not None:
        z += b
    z_out[...] = z.reshape(z_out.shape)
    a_out[...] = _act(z_out, activation, alpha)


def conv_backward(x, w, b, z, a, da, strides, padding, activation, alpha, l2, dz_out, dw_out,
                  db_out, dx_out, cols_out):
    """dz = da * act'(z); dw = im2col(x)^T dz + 2 l2 w; db = sums of dz; dx =
    col2im(dz w^T); cols_out is scratch."""
    g = _conv_geometry(x, w, strides, padding)
    dz_out[...] = _act_grad(z, a, da, activation, alpha)
    dz = dz_out.reshape(-1, w.shape[3])
    cols_out[...] = _im2col(x, g)
    dw_out[...] = (cols_out.T @ dz).reshape(w.shape)
    if l2 != 0:
        dw_out += (2 * w.dtype.type(l2)) * w
    if db_out is not None:
        db_out[...] = dz.sum(axis=0)
    if dx_out is not None:
        dx_out[...] = _col2im(dz @ w.reshape(-1, w.shape[3]).T, g, x.shape[0])


def maxpool_forward(x, pool_size, strides, padding, out, idx_out):
    """out = window maxima of x; idx_out = window position (i * pool_w + j) of the first
    maximum of each window."""
    g = geometry(x.shape[1:4], tuple(pool_size), tuple(strides), padding, x.shape[3])
    xp = _padded(x, g, -np.inf)
    taps = np.stack([xp[_window(g, i, j)] for i in range(g[3]) for j in range(g[4])])
    idx_out[...] = taps.argmax(axis=0)   # argmax keeps the first of equal maxima
    out[...] = taps.max(axis=0)


def maxpool_backward(dout, idx, pool_size, strides, padding, dx_out):
    """dx_out = dout routed to the recorded maxima."""
    n = dx_out.shape[0]
    g = geometry(dx_out.shape[1:4], tuple(pool_size), tuple(strides), padding,
                 dx_out.shape[3])
    h, w, c, kh, kw, _, _, pt, pl, _, _, _ = g
    dxp = np.zeros_like(_padded(np.zeros((n, h, w, c), dout.dtype), g))
    for i in range(kh):
        for j in range(kw):
            dxp[_window(g, i, j)] += np.where(idx == i * kw + j, dout, 0).astype(dout.dtype)
    dx_out[...] = dxp[:, pt:pt + h, pl:pl + w, :]


# ----------------------------------------------------------------------------- losses

def _weights(sample_weight, n, dtype):
    return np.ones(n, dtype) if sample_weight is None else sample_weight


def _loss_value_grad(kind, pred, y, labels, param):
    """Per-row loss and d loss_row / d pred for one loss kind (unweighted, unscaled)."""
    n, m = pred.shape
    dtype = pred.dtype.type
    if kind not in _LOSS:
        raise ValueError(f"unknown loss code {kind}")
    if labels is not None:
        y = np.zeros_like(pred)
        y[np.arange(n), labels] = 1
    name = _LOSS[kind]
    if name in ("sparse_softmax_xent", "softmax_xent"):
        shifted = pred - pred.max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ysum = y.sum(axis=1, keepdims=True)
        loss = (y * (lse - shifted)).sum(axis=1)
        return loss, np.exp(shifted - lse) * ysum - y
    if name == "sigmoid_bce":
        loss = np.maximum(pred, 0) - pred * y + np.log1p(np.exp(-np.abs(pred)))
        return loss.mean(axis=1), (_sigmoid(pred) - y) / dtype(m)
    lo = dtype(1e-7)
    hi = dtype(1) - lo
    if name in ("sparse_cce", "cce"):
        s = pred.sum(axis=1, keepdims=True)
        q = pred / s
        inside = (q >= lo) & (q <= hi)
        c = np.clip(q, lo, hi)
        u = np.where(inside, -y / c, 0)
        grad = (u - (u * q).sum(axis=1, keepdims=True)) / s
        return -(y * np.log(c)).sum(axis=1), grad
    if name == "bce":
        inside = (pred >= lo) & (pred <= hi)
        c = np.clip(pred, lo, hi)
        loss = -(y * np.log(c) + (1 - y) * np.log1p(-c))
        grad = np.where(inside, (1 - y) / (1 - c) - y / c, 0) / dtype(m)
        return loss.mean(axis=1), grad
    d = pred - y
    if name == "mse":
        return (d * d).mean(axis=1), 2 * d / dtype(m)
    if name == "mae":
        return np.abs(d).mean(axis=1), np.sign(d) / dtype(m)   # sign(0) = 0, as torch and TF
    if name == "huber":
        delta, half = dtype(param), dtype(0.5)
        quadratic = np.abs(d) <= delta                          # |e| = delta is quadratic
        loss = np.where(quadratic, half * (d * d), delta * np.abs(d) - half * (delta * delta))
        grad = np.where(quadratic, d, delta * np.sign(d)) / dtype(m)
        return loss.mean(axis=1), grad
    raise ValueError(f"unknown loss kind {kind}")


def _loss(kind, pred, y, labels, sample_weight, scale, grad_out, param=0.0):
    if kind == LOSSES["huber"] and not (np.isfinite(param) and param > 0):
        raise ValueError(f"huber: delta must be a finite number > 0, got {param}")
    w = _weights(sample_weight, pred.shape[0], pred.dtype)
    loss, grad = _loss_value_grad(kind, pred, y, labels, param)
    grad_out[...] = grad * (w * pred.dtype.type(scale))[:, None]
    return float(np.dot(w.astype(np.float64), loss.astype(np.float64)))


def sparse_softmax_xent(z, labels, sample_weight, scale, grad_out):
    """Softmax cross-entropy from logits z against integer labels."""
    return _loss(LOSSES["sparse_softmax_xent"], z, None, labels, sample_weight, scale, grad_out)


def softmax_xent(z, y, sample_weight, scale, grad_out):
    """Softmax cross-entropy from logits z against one-hot or soft targets y."""
    return _loss(LOSSES["softmax_xent"], z, y, None, sample_weight, scale, grad_out)


def sigmoid_bce(z, y, sample_weight, scale, grad_out):
    """Binary cross-entropy from logits z, mean over the row (multi-label)."""
    return _loss(LOSSES["sigmoid_bce"], z, y, None, sample_weight, scale, grad_out)


def sparse_cce(p, labels, sample_weight, scale, grad_out):
    """Categorical cross-entropy from probabilities p against integer labels."""
    return _loss(LOSSES["sparse_cce"], p, None, labels, sample_weight, scale, grad_out)


def cce(p, y, sample_weight, scale, grad_out):
    """Categorical cross-entropy from probabilities p (rows rescaled to sum 1, clipped)."""
    return _loss(LOSSES["cce"], p, y, None, sample_weight, scale, grad_out)


def bce(p, y, sample_weight, scale, grad_out):
    """Binary cross-entropy from clipped probabilities p, mean over the row."""
    return _loss(LOSSES["bce"], p, y, None, sample_weight, scale, grad_out)


def mse(p, y, sample_weight, scale, grad_out):
    """Mean squared error over the row."""
    return _loss(LOSSES["mse"], p, y, None, sample_weight, scale, grad_out)


def mae(p, y, sample_weight, scale, grad_out):
    """Mean absolute error over the row; d|e|/de = sign(e), 0 at e = 0."""
    return _loss(LOSSES["mae"], p, y, None, sample_weight, scale, grad_out)


def huber(p, y, sample_weight, scale, grad_out, delta):
    """Huber loss over the row (Keras 3): 0.5 e^2 for |e| <= delta, else
    delta |e| - 0.5 delta^2, with e = p - y and delta > 0."""
    return _loss(LOSSES["huber"], p, y, None, sample_weight, scale, grad_out, delta)


def metric_sum(metric, pred, y, labels, sample_weight, threshold):
    """sum_i w_i * metric_i with metric_i averaged over the row (Keras's convention)."""
    w = _weights(sample_weight, pred.shape[0], pred.dtype).astype(np.float64)
    if metric not in _METRIC:
        raise ValueError(f"unknown metric code {metric}")
    name = _METRIC[metric]
    if name == "binary_accuracy":
        per_row = ((pred > pred.dtype.type(threshold)) == y).mean(axis=1)
    elif name == "sparse_categorical_accuracy":
        per_row = pred.argmax(axis=1) == labels
    elif name == "categorical_accuracy":
        per_row = pred.argmax(axis=1) == y.argmax(axis=1)
    elif name == "mse":
        per_row = ((pred - y) ** 2).mean(axis=1)
    elif name == "mae":
        per_row = np.abs(pred - y).mean(axis=1)
    else:
        raise ValueError(f"unknown metric {name!r}")
    return float(np.dot(w, per_row.astype(np.float64)))


# ----------------------------------------------------------------------------- optimizers

def adam_update(w, g, m, v, learning_rate, beta_1, beta_2, epsilon, step):
    """Keras Adam step at 1-based step t, in place on w, m, v."""
    t = w.dtype.type
    alpha = learning_rate * np.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
    m += (g - m) * t(1.0 - beta_1)
    v += (g * g - v) * t(1.0 - beta_2)
    w -= (m * t(alpha)) / (np.sqrt(v) + t(epsilon))


def adamw_update(w, g, m, v, learning_rate, weight_decay, beta_1, beta_2, epsilon, step):
    """Keras AdamW: w *= 1 - weight_decay lr, then the Adam step; in place on w, m, v."""
    w *= w.dtype.type(1.0 - weight_decay * learning_rate)
    adam_update(w, g, m, v, learning_rate, beta_1, beta_2, epsilon, step)


def rmsprop_update(w, g, velocity, momentum_buf, average_grad, learning_rate, rho, momentum,
                   epsilon, centered):
    """Keras RMSprop step, in place on w, velocity (and momentum_buf, average_grad if used)."""
    t = w.dtype.type
    velocity[...] = velocity * t(rho) + (g * g) * t(1.0 - rho)
    denom = velocity + t(epsilon)
    if centered:
        average_grad[...] = average_grad * t(rho) + g * t(1.0 - rho)
        denom = denom - average_grad * average_grad
    step = (g * t(learning_rate)) / np.sqrt(denom)
    if momentum > 0:
        momentum_buf[...] = momentum_buf * t(momentum) + step
        w -= momentum_buf
    else:
        w -= step


def _norm(x):
    """L2 norm in float64, rounded to x's dtype (the compiled kernels sum in double)."""
    x64 = x.astype(np.float64)
    return x.dtype.type(np.sqrt(np.dot(x64, x64)))


def clip_by_norm(g, segments, clipnorm):
    """Keras clipnorm on each (offset, length) row of segments: (s * c) / max(||s||, c)."""
    t = g.dtype.type
    for off, length in np.asarray(segments).reshape(-1, 2):
        seg = g[off:off + length]
        norm = _norm(seg)
        den = norm if (np.isnan(norm) or norm > t(clipnorm)) else t(clipnorm)
        seg[...] = (seg * t(clipnorm)) / den


def clip_by_global_norm(g, clipnorm):
    """Keras global_clipnorm: g *= c min(1 / ||g||, 1 / c) + (||g|| - ||g||)."""
    t = g.dtype.type
    norm = _norm(g)
    with np.errstate(divide="ignore"):
        inv_norm = t(1) / norm
    scale = t(clipnorm) * min(inv_norm, t(1) / t(clipnorm)) + (norm - norm)
    g *= t(scale)


def clip_by_value(g, clipvalue):
    """Keras clipvalue: g = clip(g, -c, c) (NaN stays NaN)."""
    np.clip(g, -g.dtype.type(clipvalue), g.dtype.type(clipvalue), out=g)


def sgd_update(w, g, velocity, learning_rate, momentum, nesterov):
    """Keras SGD step, in place on w (and velocity when momentum != 0)."""
    t = w.dtype.type
    if momentum == 0:
        w -= t(learning_rate) * g
        return
    velocity[...] = -g * t(learning_rate) + velocity * t(momentum)
    if nesterov:
        w += -g * t(learning_rate) + velocity * t(momentum)
    else:
        w += velocity


# ----------------------------------------------------------------------------- engine

_TRAINABLE = ("dense", "conv")            # layer kinds with weights
_RESHAPING = ("dense", "conv", "maxpool")  # kinds whose output width differs from the input's


class Engine:
    """NumPy twin of the compiled Engine: same constructor, same methods, same results."""

    def __init__(self, layers, params, aux, loss, fused, metrics, threshold, delta=1.0):
        if loss not in _LOSS:
            raise ValueError(f"Engine: unknown loss code {loss}")
        if loss == LOSSES["huber"] and not (0 < delta < float("inf")):
            raise ValueError(f"Engine: Huber's delta must be a finite number > 0, got {delta}")
        self.layers = [dict(spec) for spec in layers]
        self.delta = delta
        for spec in self.layers:
            if spec.get("kind") not in LAYER_KINDS:
                raise ValueError(f"Engine: unknown layer kind {spec.get('kind')!r}")
            _act_name(spec.get("activation", 0))
            if spec["kind"] in ("conv", "maxpool"):
                if "geom" not in spec or "padding" not in spec:
                    raise ValueError("Engine: a conv or maxpool layer needs 'geom' and "
                                     "'padding'")
                g = tuple(spec["geom"])
                if geometry(g[:3], g[3:5], g[5:7], spec["padding"], g[11]) != g or (
                        spec["n_in"], spec["n_out"]) != (g[0] * g[1] * g[2], g[9] * g[10] * g[11]):
                    raise ValueError(f"Engine: bad window geometry {g!r}")
            if spec["kind"] not in _RESHAPING and spec["n_in"] != spec["n_out"]:
                raise ValueError(f"Engine: a {spec['kind']} layer keeps its width")
            seed = spec.get("seed")
            if seed is not None and (spec["kind"] != "dropout" or not isinstance(seed, int)
                                     or not 0 <= seed < 2 ** 64):
                raise ValueError("Engine: a layer seed is a Dropout's int in [0, 2**64)")
        if loss not in _LOSS:
            raise ValueError(f"Engine: unknown loss code {loss}")
        for code in metrics:
            if code not in _METRIC:
                raise ValueError(f"Engine: unknown metric code {code}")
        if fused and self.layers[-1]["kind"] not in ("dense", "activation", "conv"):
            raise ValueError("Engine: a fused loss needs a Dense, Conv or activation output "
                             "layer")
        self.params, self.aux = params, aux
        self.dtype = params.dtype
        self.grads = np.zeros_like(params)
        self.loss, self.fused = loss, fused
        self.metrics, self.threshold = list(metrics), threshold
        self.opt: Any = None   # set_optimizer's dict (None until then)
        self.max_rows = 0
        self.data_scans = 0
        self._out_type = np.ndarray
        self._bound = self._order = None
        below = False
        for spec in self.layers:
            spec["need_dx"] = below
            below = below or spec["kind"] in _TRAINABLE

    def reserve(self, rows):
        self.max_rows = max(self.max_rows, rows)

    def set_optimizer(self, kind, m, v, beta_1=0.9, beta_2=0.999, epsilon=1e-7, momentum=0.0,
                      nesterov=False, *, average_grad=None, rho=0.9, centered=False,
                      weight_decay=0.0, clipnorm=0.0, global_clipnorm=0.0, clipvalue=0.0,
                      segments=None):
        if kind not in OPTIMIZERS:
            raise ValueError(f"Engine: unknown optimizer {kind!r}")
        clips = [(name, value) for name, value in (("clipnorm", clipnorm),
                 ("global_clipnorm", global_clipnorm), ("clipvalue", clipvalue)) if value > 0]
        if len(clips) > 1:
            raise ValueError("Engine: at most one of clipnorm, global_clipnorm and clipvalue")
        self.opt = dict(kind=kind, m=m, v=v, avg=average_grad, beta_1=beta_1, beta_2=beta_2,
                        epsilon=epsilon, momentum=momentum, nesterov=nesterov, rho=rho,
                        centered=centered, weight_decay=weight_decay,
                        clip=clips[0] if clips else None, segments=segments)

    def _update(self, lr, step):
        opt, g = self.opt, self.grads
        if opt["clip"] is not None:
            name, value = opt["clip"]
            if name == "clipnorm":
                clip_by_norm(g, opt["segments"], value)
            elif name == "global_clipnorm":
                clip_by_global_norm(g, value)
            elif name == "clipvalue":
                clip_by_value(g, value)
            else:
                raise ValueError(f"unknown clipping {name!r}")
        kind = opt["kind"]
        if kind == "adam":
            adam_update(self.params, g, opt["m"], opt["v"], lr, opt["beta_1"], opt["beta_2"],
                        opt["epsilon"], step)
        elif kind == "adamw":
            adamw_update(self.params, g, opt["m"], opt["v"], lr, opt["weight_decay"],
                         opt["beta_1"], opt["beta_2"], opt["epsilon"], step)
        elif kind == "sgd":
            sgd_update(self.params, g, opt["m"], lr, opt["momentum"], opt["nesterov"])
        elif kind == "rmsprop":
            rmsprop_update(self.params, g, opt["m"], opt["v"], opt["avg"], lr, opt["rho"],
                           opt["momentum"], opt["epsilon"], opt["centered"])
        else:
            raise ValueError(f"Engine: unknown optimizer {kind!r}")

    def _views(self, spec):
        if spec["kind"] == "conv":
            g = spec["geom"]
            shape, n_out = (g[3], g[4], g[2], g[11]), g[11]
            size = int(np.prod(shape))
            w = self.params[spec["w_off"]:spec["w_off"] + size].reshape(shape)
            dw = self.grads[spec["w_off"]:spec["w_off"] + size].reshape(shape)
            b = db = None
            if spec.get("b_off", -1) >= 0:
                b = self.params[spec["b_off"]:spec["b_off"] + n_out]
                db = self.grads[spec["b_off"]:spec["b_off"] + n_out]
            return w, b, dw, db
        n_in, n_out = spec["n_in"], spec["n_out"]
        w = self.params[spec["w_off"]:spec["w_off"] + n_in * n_out].reshape(n_in, n_out)
        dw = self.grads[spec["w_off"]:spec["w_off"] + n_in * n_out].reshape(n_in, n_out)
        b = db = None
        if spec.get("b_off", -1) >= 0:
            b = self.params[spec["b_off"]:spec["b_off"] + n_out]
            db = self.grads[spec["b_off"]:spec["b_off"] + n_out]
        return w, b, dw, db

    def _forward(self, x, training, step, seed):
        """Per layer (input, middle, output): middle is z (Dense), the mask (Dropout)."""
        cache, prev = [], x
        for index, spec in enumerate(self.layers):
            kind = spec["kind"]
            if kind == "dense":
                w, b, _, _ = self._views(spec)
                z = prev @ w
                if b is not None:
                    z += b
                a = _act(z, spec.get("activation", 0), spec.get("alpha", 0.0))
                cache.append((prev, z, a))
            elif kind == "dropout":
                rate = spec.get("rate", 0.0)
                if training and rate > 0:
                    if spec.get("seed") is not None:   # the layer's own seed, stream = step
                        key, stream = spec["seed"], step
                    else:
                        key, stream = seed, step * len(self.layers) + index
                    mask = _dropout_mask(key, stream, prev.shape) >= rate
                    a = np.where(mask, prev / prev.dtype.type(1 - rate), 0).astype(prev.dtype)
                else:
                    mask, a = None, prev
                cache.append((prev, mask, a))
            elif kind == "normalization":
                m, off = spec["n_out"], spec["aux_off"]
                a = (prev - self.aux[off:off + m]) / self.aux[off + m:off + 2 * m]
                cache.append((prev, None, a))
            elif kind == "activation":
                a = _act(prev, spec.get("activation", 0), spec.get("alpha", 0.0))
                cache.append((prev, prev, a))
            elif kind == "conv":
                w, b, _, _ = self._views(spec)
                g, n = spec["geom"], prev.shape[0]
                z = np.empty((n, g[9], g[10], g[11]), prev.dtype)
                a = np.empty_like(z)
                cols = np.empty((n * g[9] * g[10], g[2] * g[3] * g[4]), prev.dtype)
                conv_forward(prev.reshape(n, g[0], g[1], g[2]), w, b, (g[5], g[6]),
                             spec["padding"], spec.get("activation", 0), spec.get("alpha", 0.0),
                             cols, z, a)
                a = a.reshape(n, -1)
                cache.append((prev, z.reshape(n, -1), a))
            elif kind == "maxpool":
                g, n = spec["geom"], prev.shape[0]
                a = np.empty((n, g[9], g[10], g[11]), prev.dtype)
                idx = np.empty_like(a)
                maxpool_forward(prev.reshape(n, g[0], g[1], g[2]), (g[3], g[4]), (g[5], g[6]),
                                spec["padding"], a, idx)
                a = a.reshape(n, -1)
                cache.append((prev, idx, a))
            else:
                raise ValueError(f"Engine: unknown layer kind {kind!r}")
            prev = a
        return cache

    def _loss(self, cache, y, labels, sw, stats):
        n = cache[-1][2].shape[0]
        # fused: the logits are a Dense layer's z, or an activation layer's input (= its
        # cached middle)
        pred = cache[-1][1] if self.fused else cache[-1][2]
        grad = np.empty_like(pred)
        loss = _loss(self.loss, pred, y, labels, sw, 1.0 / n, grad, self.delta)
        for k, code in enumerate(self.metrics):  # unweighted, as Keras's compiled metrics
            stats[2 + 2 * k] += metric_sum(code, cache[-1][2], y, labels, None, self.threshold)
            stats[3 + 2 * k] += n
        return loss, grad

    def _backward(self, cache, g):
        for index in range(len(self.layers) - 1, -1, -1):
            spec = self.layers[index]
            kind = spec["kind"]
            prev, mid, a = cache[index]
            last = index == len(self.layers) - 1
            act = 0 if (self.fused and last) else spec.get("activation", 0)
            if kind == "dense":
                w, b, dw, db = self._views(spec)
                dz = np.empty_like(g)
                dx = np.empty_like(prev) if spec["need_dx"] else None
                has_bias = b is not None
                dense_backward(prev, w, mid, a, g, act, spec.get("alpha", 0.0),
                               spec.get("l2", 0.0), dz, dw, db, dx, l1=spec.get("l1", 0.0),
                               b=b, bias_l1=spec.get("bias_l1", 0.0) if has_bias else 0.0,
                               bias_l2=spec.get("bias_l2", 0.0) if has_bias else 0.0)
                g = dx
            elif kind == "conv":
                w, b, dw, db = self._views(spec)
                geo, n = spec["geom"], prev.shape[0]
                x4 = prev.reshape(n, geo[0], geo[1], geo[2])
                shape4 = (n, geo[9], geo[10], geo[11])
                dz = np.empty(shape4, g.dtype)
                dx = np.empty_like(x4) if spec["need_dx"] else None
                cols = np.empty((n * geo[9] * geo[10], geo[2] * geo[3] * geo[4]), g.dtype)
                conv_backward(x4, w, b, mid.reshape(shape4), a.reshape(shape4),
                              g.reshape(shape4), (geo[5], geo[6]), spec["padding"], act,
                              spec.get("alpha", 0.0), 0.0, dz, dw, db, dx, cols)
                t = w.dtype.type
                dw += (2 * t(spec.get("l2", 0.0))) * w + t(spec.get("l1", 0.0)) * np.sign(w)
                if b is not None:
                    db += ((2 * t(spec.get("bias_l2", 0.0))) * b
                           + t(spec.get("bias_l1", 0.0)) * np.sign(b))
                g = None if dx is None else dx.reshape(n, -1)
            elif kind not in LAYER_KINDS:
                raise ValueError(f"Engine: unknown layer kind {kind!r}")
            elif not spec["need_dx"]:
                g = None
            elif kind == "dropout":
                rate = spec.get("rate", 0.0)
                if mid is not None:
                    g = np.where(mid, g / g.dtype.type(1 - rate), 0).astype(g.dtype)
            elif kind == "normalization":
                m, off = spec["n_out"], spec["aux_off"]
                g = g / self.aux[off + m:off + 2 * m]
            elif kind == "activation":
                g = _act_grad(prev, a, g, act, spec.get("alpha", 0.0))
            elif kind == "maxpool":
                geo, n = spec["geom"], prev.shape[0]
                dx = np.empty((n, geo[0], geo[1], geo[2]), g.dtype)
                maxpool_backward(g.reshape(mid.shape), mid, (geo[3], geo[4]), (geo[5], geo[6]),
                                 spec["padding"], dx)
                g = dx.reshape(n, -1)
            else:
                raise ValueError(f"Engine: unknown layer kind {kind!r}")

    def penalty(self):
        """Kernel and bias penalties l1 * sum|v| + l2 * sum(v^2) of every Dense layer."""
        total = 0.0
        for spec in self.layers:
            if spec["kind"] not in _TRAINABLE:
                continue
            w, b, _, _ = self._views(spec)
            for v, l1, l2 in ((w, spec.get("l1", 0.0), spec.get("l2", 0.0)),
                              (b, spec.get("bias_l1", 0.0), spec.get("bias_l2", 0.0))):
                if v is not None and (l1 or l2):
                    v = v.astype(np.float64)
                    total += l1 * float(np.sum(np.abs(v))) + l2 * float(np.sum(v * v))
        return total

    # --- training: bind once, an order per epoch, then O(1)-checked batch runs --------------
    def bind(self, x, y, labels, sample_weight):
        if labels is not None:
            labels = np.array(labels, dtype=np.intc, copy=True)
            self.data_scans += 1
            if labels.size and (labels.min() < 0 or labels.max() >= self.layers[-1]["n_out"]):
                raise ValueError("Engine: label out of range")
        self._bound, self._order = (x, y, labels, sample_weight), None

    def set_order(self, order):
        if self._bound is None:
            raise ValueError("Engine.set_order: no data bound; call bind first")
        order = np.array(order, dtype=np.int64, copy=True)
        self.data_scans += 1
        if order.ndim != 1 or order.size == 0:
            raise ValueError("Engine.set_order: order must be a non-empty 1-D integer array")
        if order.min() < 0 or order.max() >= self._bound[0].shape[0]:
            raise ValueError("Engine.set_order: order index out of range")
        self._order = order

    def unbind(self):
        self._bound = self._order = None

    @property
    def bound(self):
        return self._bound

    def train_batches(self, batch_size, first, count, lrs, step, seed, stats):
        if self._bound is None or self._order is None:
            raise ValueError("Engine.train_batches: bind data and set an order first")
        x, y, labels, sample_weight = self._bound
        order = self._order
        n = order.shape[0]
        if batch_size < 1 or first < 0 or count < 0 or first + count > -(-n // batch_size):
            raise ValueError("Engine.train_batches: batch range outside the data")
        for b in range(first, first + count):
            rows = order[b * batch_size:min((b + 1) * batch_size, n)]
            xb = x[rows]
            yb = y[rows] if y is not None else None
            lb = labels[rows] if labels is not None else None
            sb = sample_weight[rows] if sample_weight is not None else None
            cache = self._forward(xb, True, step, seed)
            loss, grad = self._loss(cache, yb, lb, sb, stats)
            stats[0] += loss + self.penalty() * len(rows)
            stats[1] += len(rows)
            self._backward(cache, grad)
            step += 1
            self._update(lrs[b - first], step)
        return step

    def train(self, x, y, labels, sample_weight, order, batch_size, first, count, lrs, step,
              seed, stats):
        self.bind(x, y, labels, sample_weight)
        try:
            self.set_order(order)
            return self.train_batches(batch_size, first, count, lrs, step, seed, stats)
        finally:
            self.unbind()

    # --- inference ------------------------------------------------------------------------
    def forward(self, x, out):
        out[...] = self._forward(x, False, 0, 0)[-1][2]
        return out

    def infer(self, x, *, checked=False):
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64) \
                or x.ndim != 2 or not x.flags.c_contiguous:
            raise TypeError("Engine.infer: x must be a C-contiguous 2-D float32 or float64 "
                            "array")
        if x.shape[1] != self.layers[0]["n_in"]:
            raise ValueError(f"x has {x.shape[1]} features, but the model expects "
                             f"{self.layers[0]['n_in']}")
        if x.shape[0] == 0:
            raise ValueError(f"x must be non-empty, got shape {x.shape}")
        own_dtype = x.dtype == self.dtype
        with np.errstate(over="ignore"):  # beyond float32's range -> inf, refused below
            x = x.astype(self.dtype, copy=False)
        if not (checked and own_dtype) and not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinity")
        with np.errstate(invalid="ignore"):  # NaN passed by a caller that said `checked`
            result = self._forward(x, False, 0, 0)[-1][2]
        out = self._out_type(result.shape, result.dtype)   # a new array of that type
        out[...] = result
        return out

    def set_output_type(self, cls):
        """Make `infer` return instances of cls, an ndarray subclass."""
        if not (isinstance(cls, type) and issubclass(cls, np.ndarray)):
            raise TypeError(f"Engine.set_output_type: {cls!r} is not an ndarray subclass")
        self._out_type = cls

    def evaluate(self, x, y, labels, sample_weight, stats):
        cache = self._forward(x, False, 0, 0)
        loss, _ = self._loss(cache, y, labels, sample_weight, stats)
        stats[0] += loss
        stats[1] += x.shape[0]

    def _force_code(self, what, index, code):
        """Bypass the constructor's checks (tests of the dispatch error branches)."""
        if what == "layer":
            self.layers[index]["kind"] = code
        elif what == "activation":
            self.layers[index]["activation"] = code
        elif what == "loss":
            self.loss = code
        elif what == "metric":
            self.metrics[index] = code
        elif what == "optimizer":
            self.opt["kind"] = code
        else:
            raise ValueError(f"_force_code: unknown field {what!r}")


def _dropout_mask(seed, stream, shape):
    """Uniform [0, 1) values from the same counter-based generator as csrc/fnn_rng.h."""
    golden = np.uint64(0x9E3779B97F4A7C15)

    def mix(z):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    with np.errstate(over="ignore"):
        key = mix(np.uint64(seed) ^ (np.uint64(stream) * golden))
        index = np.arange(int(np.prod(shape)), dtype=np.uint64)
        bits = mix(key + index * golden)
    return ((bits >> np.uint64(11)).astype(np.float64) / 9007199254740992.0).reshape(shape)


def all_finite(x):
    """NumPy twin of the compiled check (which allocates nothing)."""
    return bool(np.isfinite(x).all())


__all__ = ["ACTIVATIONS", "LOSSES", "METRICS", "LAYER_KINDS", "OPTIMIZERS", "all_finite",
           "matmul", "activation_forward", "dense_forward", "dense_backward", "conv_forward",
           "conv_backward", "maxpool_forward", "maxpool_backward", "sparse_softmax_xent",
           "softmax_xent", "sigmoid_bce", "sparse_cce", "cce", "bce", "mse", "mae", "huber",
           "metric_sum", "adam_update", "adamw_update", "sgd_update", "rmsprop_update",
           "clip_by_norm", "clip_by_global_norm", "clip_by_value", "Engine"]
