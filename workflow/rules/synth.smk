# Stage rules: synth (filled in by the synth stage).
