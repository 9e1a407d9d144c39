"""Model worker processes: the only place the native library is ever loaded."""
