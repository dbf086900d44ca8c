# Stage rules: parse (filled in by the parse stage).
