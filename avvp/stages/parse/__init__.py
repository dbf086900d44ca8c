"""Parse any video into audio, visual and audio-visual events with a trained HAN / MA / JoMoLD / VALOR model.

How a video becomes events:

1. **Segments.** The video is cut into whole 1-second segments from its start: a video of
   duration d gives T = floor(d + 0.1) segments (23.4 s → 23; 9.95 s → 10, see
   :data:`SEGMENT_TOLERANCE_S`), and the **tail** shorter than a second (0.4 s here) is left out
   and reported (``tail_s``). HAN has no positional encoding, so any T ≥ 1 works; a video shorter
   than 0.9 s is an error. The duration is the video stream's; when the audio stream covers less
   of a window (it ends earlier, starts later or has gaps), up to ``audio_tolerance`` seconds per
   window (default 2) are padded with silence and reported as a warning (``warnings`` in
   ``events.json``, the summary); more is an error naming the file.
2. **Features.** The same extractors as in training (settings and weight identity taken from the
   model file, see :func:`load_parser`) give audio (T, Da), frame (8T, Df) and clip (T, Dc)
   features. They are decoded and embedded in windows of ``window`` seconds (default 10, the
   LLP clip length), so memory does not grow with the video and every window's features are laid
   out as in training: VGGish's 0.96-s examples restart at each window, so audio row t is at most
   0.4 s from second t, as in the LLP features (one pass over a 10-minute video would put the
   last row 24 s early). Each window is decoded once for the three roles
   (:class:`avvp.stages.extractors.joint.ClipDecoder`). A file without an audio stream is parsed with
   silence in its place, and the output says so; a file without a video stream is an error naming
   it. A VALOR++ model reads VALOR's teachers instead of VGGish and ResNet (its declared input
   roles): CLAP's (64, 768) token map of each window (the model pools each window's map to that
   window's segments) and one CLIP embedding per second; their weights come from the same
   settings as ``avvp extract`` (``features.clap_audio``, ``features.clip_image``).
3. **Binarisation**, as in the evaluation (:func:`avvp.core.metrics.binarize`): segment t of class c is
   audio-positive when P_audio[t, c] ≥ threshold and the video-level gate passes (gate ``ma``,
   the default: the class's audio probability ``a_prob`` ≥ threshold; gate ``han``: the global
   probability); likewise visual. Audio-visual = audio AND visual.
4. **Events** are the maximal runs of consecutive positive segments per class and modality:
   ``onset`` = first segment's start, ``offset`` = last segment's end (seconds from the start of the
   file). ``confidence`` is the mean frame probability of that modality over the run; for an
   audio-visual event it is the mean over the run of min(P_audio, P_visual).

Outputs per video, in ``<out>/<video file stem>/`` (``<stem>_<ext>`` when stems repeat): ``events.json`` (the events plus what was
parsed: duration, segments, tail, gate, notes, video-level probabilities), ``events.csv`` (class,
modality, onset, offset, confidence) and ``timeline.png``.

The modules: :mod:`~avvp.stages.parse.defaults` (the settings), :mod:`~avvp.stages.parse.model_loading` (model
and extractors), :mod:`~avvp.stages.parse.windows` (segments, features window by window),
:mod:`~avvp.stages.parse.events` (runs into events), :mod:`~avvp.stages.parse.one_video`,
:mod:`~avvp.stages.parse.output` (folders, events.json / events.csv), :mod:`~avvp.stages.parse.timeline` (the
picture) and :mod:`~avvp.stages.parse.many_videos` (the summary).
"""

from avvp.stages.parse.defaults import parse_command_settings
from avvp.stages.parse.events import EVENT_COLUMNS, MODALITIES, find_events
from avvp.stages.parse.many_videos import SUMMARY_COLUMNS, VIDEO_EXTENSIONS, ParseSummary, expand_videos, parse_videos
from avvp.stages.parse.model_loading import ROLES, VideoParser, load_parser
from avvp.stages.parse.one_video import ParseResult, parse_video
from avvp.stages.parse.output import output_names, write_result
from avvp.stages.parse.timeline import MODALITY_COLOURS, plot_events
from avvp.stages.parse.windows import SEGMENT_TOLERANCE_S, even_batch, extract_features, video_segments, window_segments

__all__ = [
    "EVENT_COLUMNS", "MODALITIES", "MODALITY_COLOURS", "ROLES", "SEGMENT_TOLERANCE_S",
    "SUMMARY_COLUMNS", "VIDEO_EXTENSIONS", "ParseResult", "ParseSummary", "VideoParser", "even_batch",
    "expand_videos", "extract_features", "find_events", "load_parser", "output_names",
    "parse_command_settings", "parse_video", "parse_videos", "plot_events", "video_segments",
    "window_segments", "write_result",
]
