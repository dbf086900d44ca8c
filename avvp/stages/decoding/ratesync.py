"""ffmpeg's constant-frame-rate output conversion (``ffmpeg -i clip -r 8 out_%06d.jpg``), in Python.

The official frame extraction lets the ``ffmpeg`` command-line tool convert the
source frame rate to 8 fps. ffmpeg does not sample frames at the nearest time: for a CFR output
(image2 and rawvideo muxers) it keeps a running output counter and, for each decoded frame,
decides how many copies to emit from the drift between the frame's timestamp and the counter,
allowing a drift of up to 1.1 output frames before dropping. :class:`CfrRateSync` reproduces that
decision (``do_video_out`` in ffmpeg 4.x/5.x ``fftools/ffmpeg.c``; same logic as
``video_sync_process`` in later versions) so that we pick exactly the frames ffmpeg would write,
without running ffmpeg and without converting the frames we do not keep.

Behaviour reproduced, for a CFR output with time base ``1/fps``:

* frame time in output units: ``pts`` rescaled with 16 extra bits of precision plus ``2**-17``
  (ffmpeg's tie breaker);
* expected frame duration: ``1 / (input_rate / fps)``, capped at one output frame, replaced by the
  frame's own duration rounded to output frames when that is at least one (inputs below 2·fps);
* a frame that arrives late by less than its duration is clipped to the counter; it is dropped when
  the drift is below -1.1, repeated ``round(drift)`` times when above 1.1 (the first
  ``round(drift0 - 0.6)`` copies repeat the previous frame);
* single-stream inputs do not duplicate the first frame when it starts late (ffmpeg's ``vscfr``);
* at the end, the median of the last three "previous-frame copies" counts repeats the last frame.
"""

from __future__ import annotations

from fractions import Fraction


def rescale(value: int, src: Fraction, dst: Fraction) -> int:
    """``av_rescale_q`` with ffmpeg's default rounding (to nearest, halves away from zero)."""
    num = value * src.numerator * dst.denominator
    den = src.denominator * dst.numerator
    quotient, remainder = divmod(abs(num), den)
    if 2 * remainder >= den:
        quotient += 1
    return quotient if num >= 0 else -quotient


def parse_rate(fps: float | int | str | Fraction) -> Fraction:
    """An output frame rate as ffmpeg's ``-r`` parses it (a ratio with denominator ≤ 1,001,000)."""
    rate = Fraction(str(fps)) if not isinstance(fps, Fraction) else fps
    rate = rate.limit_denominator(1001000)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


class CfrRateSync:
    """Online frame-count decisions of ffmpeg's CFR video sync for one output stream.

    Args:
        fps: output frame rate (``-r``).
        input_rate: the input stream's guessed frame rate (``av_guess_frame_rate``); 0 if unknown.
        time_base: the input stream's time base.
        single_stream: True when the input file has only one stream (ffmpeg then uses ``vscfr``).
    """

    def __init__(self, fps: Fraction, input_rate: Fraction | float, time_base: Fraction,
                 single_stream: bool = False):
        self.out_tb = 1 / Fraction(fps)
        extra_bits = max(0, min(16, 29 - (self.out_tb.denominator.bit_length() - 1)))
        self._extra = 1 << extra_bits
        self._fine_tb = Fraction(self.out_tb.numerator, self.out_tb.denominator * self._extra)
        self.time_base = Fraction(time_base)
        self.single_stream = single_stream
        enc_tb = float(self.out_tb)
        rate = float(input_rate or 0)
        duration = 1 / (rate * enc_tb) if rate > 0 else 0.0
        self._default_duration = min(duration, 1 / (float(fps) * enc_tb))
        self.sync_opts = 0
        self.frames_out = 0
        self._history = [0, 0, 0]

    def push(self, pts: int, duration: int = 0) -> tuple[int, int]:
        """Decide the copies for one decoded frame.

        Args:
            pts: presentation timestamp in ``time_base`` units, already relative to the output start
                (ffmpeg's input offset applied).
            duration: the frame's own duration in ``time_base`` units, 0 if unknown or untrusted.

        Returns:
            ``(n_previous, n_total)``: emit ``n_total`` output frames, the first ``n_previous`` of
            which repeat the previous frame and the rest this frame.
        """
        fine = rescale(pts, self.time_base, self._fine_tb) / self._extra
        if fine:
            fine += (1.0 if fine > 0 else -1.0) / (1 << 17)
        frame_duration = self._default_duration
        if duration:
            own = round(duration * float(self.time_base) / float(self.out_tb))
            if own > 0:
                frame_duration = float(own)
        sync_ipts = fine
        delta0 = sync_ipts - self.sync_opts
        delta = delta0 + frame_duration
        n_prev, n_total = 0, 1
        if delta0 < 0 < delta:
            sync_ipts = float(self.sync_opts)
            frame_duration += delta0
            delta0 = 0.0
        if self.single_stream and self.frames_out == 0 and delta0 >= 0.5:
            delta = frame_duration
            delta0 = 0.0
            self.sync_opts = round(sync_ipts)
        if delta < -1.1:
            n_total = 0
        elif delta > 1.1:
            n_total = round(delta)
            if delta0 > 1.1:
                n_prev = round(delta0 - 0.6)
        n_prev = min(n_prev, n_total)
        self._history = [n_prev] + self._history[:2]
        self.sync_opts += n_total
        self.frames_out += n_total
        return n_prev, n_total

    def flush(self) -> int:
        """How many more copies of the last frame ffmpeg writes at the end of the stream."""
        n = sorted(self._history)[1]
        self.frames_out += n
        return n
