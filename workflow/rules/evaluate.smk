# Stage rules: evaluate (filled in by the evaluate stage).
