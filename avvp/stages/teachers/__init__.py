"""Modality-independent teachers (VALOR): CLIP for what is visible, CLAP for what is audible.

The teachers turn raw video into segment-level pseudo labels per modality. ``labels`` holds the
pseudo-label store that every producer (the teachers, VALOR's release, the demo's stand-in) writes
and every consumer (training, scoring) reads; ``pseudo`` thresholds a teacher's scores into labels;
``npy`` reads and writes VALOR's ``segment_pseudo_labels`` folders; ``release`` imports VALOR's
released ``CLIP/`` and ``CLAP/`` folders; ``score`` scores the labels as predictions; ``standin``
holds the demo's stand-in teachers.
"""
