cdef int current_num_threads() noexcept nogil
