# Stage rules: refine (filled in by the refine stage).
