# Stage rules: features (filled in by the features stage).
