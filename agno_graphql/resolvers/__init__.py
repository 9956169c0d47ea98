"""One small function per root field: arguments in, a domain call, types out."""
