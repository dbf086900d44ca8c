# Stage rules: tables (filled in by the tables stage).
