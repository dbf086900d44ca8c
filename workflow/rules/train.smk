# Stage rules: train (filled in by the train stage).
