"""Anomaly detection on one series, as a pure state machine with reasons in words.

    step(state, sample, params, now, change_at=None) -> (new_state, verdict)

The operator keeps `AnomalyState` between evaluations (as JSON:
`state_to_json` / `state_from_json`), feeds one sample per evaluation and acts
on the verdict. Nothing here reads the clock or does I/O.

Baselines (what "normal" is)
- `medianMad`: median and scaled MAD (x 1.4826, so one "MAD" is one standard
  deviation on Gaussian noise) of the samples in the lookback. Robust: spikes,
  and even a sustained anomaly shorter than half the lookback, barely move it,
  so all samples are kept. When more than half the samples are equal (MAD 0,
  e.g. a mostly idle counter) the mean absolute deviation x 1.2533 stands in.
- `ewma`: exponentially weighted mean and variance; alpha defaults to
  2 / (N + 1), N the samples in the lookback, and starts as a plain running
  mean so the first samples do not anchor it. A sample more than `threshold`
  away updates it clipped to the threshold, and a suspicious sample (beyond
  the clear threshold or 3 sigmas, or while pending or firing) moves the mean
  only: a spike or a sustained anomaly cannot widen the variance until it
  hides itself (or the next one).
- daily seasonality: compare with the same time of day (UTC) in the lookback:
  for medianMad the samples within +/- half a `seasonBucket` of now's time of
  day, for ewma one set of statistics per bucket of the day. Until a bucket
  has `minSamples`, the whole lookback stands in, and the explanation says so.

Score = (value - baseline) / scale, in MADs (medianMad) or sigmas (ewma).
The scale has a floor, max(minScale, relativeMinScale x |baseline|), so a flat
series (scale ~0: a constant 0 error count, a pinned gauge) does not turn a
tiny wiggle into a huge score. minScale is in the series' units (default 0:
any change from a perfectly flat zero series is anomalous; set it to what
counts as noise, e.g. 1 request/s); relativeMinScale defaults to 1%.

Firing: direction up, down or both. Fire when the score reaches `threshold`
(after `for`, if set: it must stay there that long; a drop under the
threshold or a missing sample restarts the wait), clear only when it falls
below `clearThreshold` (hysteresis: a value hovering around the threshold
fires once, not on every crossing). Nothing fires before `minSamples`.
A missing sample (None, NaN, infinite) is "no data": it neither clears nor
fires, and the verdict says so.

Drift: after a deliberate change at `change_at` (a rollout, a config change),
if the series sits at a new level (score beyond `clearThreshold`, same side)
for `relearnAfter` consecutive evaluations, the baseline is re-learned from
the post-change samples only, instead of firing forever, and a note says so.
Until then it fires as usual: a regression right after a change is exactly
what a remediation (a rollback) is for, and `relearnAfter` is how long it is
treated as one before it is accepted as the new normal.
"""

from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from remediator.core.words import significant

from remediator.core.durations import format_duration, format_time, parse_duration

if TYPE_CHECKING:
    from remediator.api.models import AnomalyTrigger

Method = Literal["medianMad", "ewma"]
Direction = Literal["up", "down", "both"]
Status = Literal["learning", "ok", "pending", "firing", "noData"]
Transition = Literal["fired", "cleared"]

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): scaled MAD estimates sigma on Gaussian data
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi / 2): mean absolute deviation -> sigma on Gaussian data
_DAY = 86_400.0
# Samples beyond this many sigmas never widen the EWMA variance: noise lands there 0.3% of the time,
# so leaving them out shrinks sigma by about 1%, while a sustained anomaly can no longer hide itself.
_WIDEN_GATE = 3.0
_TINY = 1e-12  # last-resort floor so nothing ever divides by zero
STATE_VERSION = 1


@dataclass(frozen=True)
class AnomalyParams:
    method: Method = "medianMad"
    lookback: timedelta = timedelta(days=7)
    step: timedelta = timedelta(minutes=5)
    daily_seasonality: bool = False
    season_bucket: timedelta = timedelta(hours=1)
    ewma_alpha: float | None = None
    threshold: float = 6.0
    clear_threshold: float = 3.0
    direction: Direction = "up"
    min_samples: int = 30
    for_: timedelta = timedelta(0)
    min_scale: float = 0.0
    relative_min_scale: float = 0.01
    relearn_after: int = 12
    max_samples: int | None = None
    description: str = "value"
    unit: str = ""

    def __post_init__(self) -> None:
        problem = _params_problem(self)
        if problem:
            raise ValueError(f"invalid anomaly parameters: {problem}")

    @property
    def sample_cap(self) -> int:
        """How many samples the medianMad history keeps (default: one lookback of steps)."""
        return self.max_samples or math.ceil(self.lookback / self.step) + 1

    @property
    def alpha(self) -> float:
        """EWMA smoothing for the whole series."""
        return self.ewma_alpha or 2 / (self.lookback / self.step + 1)

    @property
    def bucket_alpha(self) -> float:
        """EWMA smoothing per time-of-day bucket (it sees far fewer samples than the whole series)."""
        per_bucket = max(self.lookback / timedelta(days=1), 1) * max(self.season_bucket / self.step, 1)
        return self.ewma_alpha or 2 / (per_bucket + 1)


def _params_problem(p: AnomalyParams) -> str | None:
    if p.method not in ("medianMad", "ewma"):
        return f"method must be medianMad or ewma, got {p.method!r}"
    if p.direction not in ("up", "down", "both"):
        return f"direction must be up, down or both, got {p.direction!r}"
    if p.step <= timedelta(0) or p.lookback < p.step:
        return f"need 0 < step <= lookback, got step {p.step} and lookback {p.lookback}"
    if not timedelta(0) < p.season_bucket <= timedelta(hours=12):
        return f"seasonBucket must be between 0 and 12h, got {p.season_bucket}"
    if p.ewma_alpha is not None and not 0 < p.ewma_alpha <= 1:
        return f"ewmaAlpha must be in (0, 1], got {p.ewma_alpha}"
    if p.threshold <= 0 or not 0 <= p.clear_threshold <= p.threshold:
        return (f"need 0 <= clearThreshold <= threshold and threshold > 0 (hysteresis), got "
                f"threshold {p.threshold} and clearThreshold {p.clear_threshold}")
    if p.min_samples < 3:
        return f"minSamples must be at least 3, got {p.min_samples}"
    if p.for_ < timedelta(0):
        return f"for must not be negative, got {p.for_}"
    if p.min_scale < 0 or p.relative_min_scale < 0:
        return "minScale and relativeMinScale must not be negative"
    if p.relearn_after < 1:
        return f"relearnAfter must be at least 1, got {p.relearn_after}"
    if p.max_samples is not None and p.max_samples < p.min_samples:
        return f"maxSamples {p.max_samples} is below minSamples {p.min_samples}"
    return None


def params_from_trigger(trigger: AnomalyTrigger, **overrides: object) -> AnomalyParams:
    """AnomalyParams from a Runbook's anomaly trigger; `overrides` for fields the CRD does not carry."""
    baseline = trigger.baseline
    fields = {
        "method": baseline.method, "lookback": parse_duration(baseline.lookback),
        "step": parse_duration(baseline.step), "daily_seasonality": baseline.daily_seasonality,
        "ewma_alpha": baseline.ewma_alpha, "threshold": trigger.threshold,
        "clear_threshold": trigger.clear_threshold, "direction": trigger.direction,
        "min_samples": trigger.min_samples, "for_": parse_duration(trigger.for_),
        "description": trigger.description or "value", "unit": trigger.unit,
    }
    return AnomalyParams(**{**fields, **overrides})


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class EwmaStats:
    bucket: int  # -1: every sample; otherwise the time-of-day bucket
    mean: float
    variance: float
    count: int


@dataclass(frozen=True)
class AnomalyState:
    samples: tuple[tuple[float, float], ...] = ()  # (unix seconds, value), oldest first; medianMad
    ewma: tuple[EwmaStats, ...] = ()  # ewma
    firing: bool = False
    firing_since: float | None = None
    pending_since: float | None = None
    last_at: float | None = None
    change_at: float | None = None  # the change being watched for a level shift
    shift_sign: int = 0
    shifted: tuple[tuple[float, float], ...] = ()  # consecutive post-change samples at the new level
    relearned_for: float | None = None  # the change whose level already became the baseline


def state_to_json(state: AnomalyState) -> dict:
    """Plain JSON types only (no NaN is ever stored), for a status field or an annotation."""
    return {
        "version": STATE_VERSION,
        "samples": [list(sample) for sample in state.samples],
        "ewma": [[s.bucket, s.mean, s.variance, s.count] for s in state.ewma],
        "firing": state.firing,
        "firingSince": state.firing_since,
        "pendingSince": state.pending_since,
        "lastAt": state.last_at,
        "changeAt": state.change_at,
        "shiftSign": state.shift_sign,
        "shifted": [list(sample) for sample in state.shifted],
        "relearnedFor": state.relearned_for,
    }


def state_from_json(data: dict) -> AnomalyState:
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unknown anomaly state version {data.get('version')!r}, expected {STATE_VERSION}")
    return AnomalyState(
        samples=tuple((float(t), float(v)) for t, v in data["samples"]),
        ewma=tuple(EwmaStats(int(b), float(m), float(var), int(n)) for b, m, var, n in data["ewma"]),
        firing=bool(data["firing"]),
        firing_since=data["firingSince"],
        pending_since=data["pendingSince"],
        last_at=data["lastAt"],
        change_at=data["changeAt"],
        shift_sign=int(data["shiftSign"]),
        shifted=tuple((float(t), float(v)) for t, v in data["shifted"]),
        relearned_for=data["relearnedFor"],
    )


# ---------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Baseline:
    center: float
    scale: float
    samples: int
    unit_name: str  # "MADs" or "sigmas"
    seasonal: bool  # compared with the same time of day
    floored: bool  # the scale is the floor, not the spread


@dataclass(frozen=True)
class AnomalyVerdict:
    status: Status
    firing: bool
    transition: Transition | None
    value: float | None
    score: float | None  # signed: positive above the baseline
    baseline: float | None
    scale: float | None
    samples: int  # how many samples the baseline was computed from
    explanation: str
    notes: tuple[str, ...] = ()


def step(state: AnomalyState, sample: float | None, params: AnomalyParams, now: datetime,
         change_at: datetime | None = None) -> tuple[AnomalyState, AnomalyVerdict]:
    """Score `sample` (the series' value at `now`), update the state, say whether it fires and why."""
    at = _seconds(now)
    if state.last_at is not None and at <= state.last_at:
        return state, _unchanged(state, f"a sample at {_clock(at)} is not newer than the last one at "
                                        f"{_clock(state.last_at)}; ignored, state unchanged")
    if _not_a_number(sample):
        return _no_data(state, sample, params, at)
    value = float(sample)
    state = replace(state, samples=_within_lookback(state.samples, at, params))
    baseline, notes = baseline_for(state, params, at)
    if baseline is None:
        learned = _learn(replace(state, pending_since=None, last_at=at), value, params, at, None)
        return learned, _learning_verdict(learned, value, params, notes)

    score = (value - baseline.center) / baseline.scale
    state = _watch_level_shift(state, value, score, params, at, _seconds(change_at) if change_at else None)
    if len(state.shifted) >= params.relearn_after:
        return _relearn(state, value, score, baseline, params, at)

    new_state, status, transition = _fire_or_clear(state, _directed(score, params.direction), params, at)
    anomalous = status in ("pending", "firing")
    new_state = _learn(replace(new_state, last_at=at), value, params, at, (baseline, score, anomalous))
    if baseline.floored:
        notes += (_floor_note(baseline, params),)
    return new_state, AnomalyVerdict(
        status=status, firing=new_state.firing, transition=transition, value=value, score=score,
        baseline=baseline.center, scale=baseline.scale, samples=baseline.samples,
        explanation=_explain(value, score, baseline, params, status, at), notes=notes,
    )


def _floor_note(baseline: Baseline, params: AnomalyParams) -> str:
    return (f"the series is nearly flat, so its spread was floored at {_number(baseline.scale)}"
            f"{_unit(params)} (max of minScale and {_number(params.relative_min_scale * 100)}% of the "
            "baseline) to keep small wiggles from scoring as huge")


def baseline_for(state: AnomalyState, params: AnomalyParams, at: float) -> tuple[Baseline | None, tuple[str, ...]]:
    """The baseline a sample at `at` is compared with, or None while fewer than minSamples are known."""
    if params.method == "ewma":
        return _ewma_baseline(state, params, at)
    return _median_baseline(state, params, at)


def _median_baseline(state: AnomalyState, params: AnomalyParams, at: float) -> tuple[Baseline | None, tuple]:
    values = [v for _, v in state.samples]
    notes: tuple[str, ...] = ()
    seasonal = False
    if params.daily_seasonality:
        half = params.season_bucket.total_seconds() / 2
        same_time = [v for t, v in state.samples if _time_of_day_distance(t, at) <= half]
        if len(same_time) >= params.min_samples:
            values, seasonal = same_time, True
        else:
            notes = ((f"only {len(same_time)} samples at this time of day in the lookback "
                      f"(need {params.min_samples}); compared with all {len(values)} samples instead"),)
    if len(values) < params.min_samples:
        return None, notes
    center = statistics.median(values)
    deviations = [abs(v - center) for v in values]
    spread = statistics.median(deviations) * MAD_TO_SIGMA or statistics.fmean(deviations) * MEAN_AD_TO_SIGMA
    scale, floored = _floored(spread, center, params)
    return Baseline(center, scale, len(values), "MADs", seasonal, floored), notes


def _ewma_baseline(state: AnomalyState, params: AnomalyParams, at: float) -> tuple[Baseline | None, tuple]:
    stats = {s.bucket: s for s in state.ewma}
    overall = stats.get(-1)
    notes: tuple[str, ...] = ()
    chosen, seasonal = overall, False
    if params.daily_seasonality:
        bucket = stats.get(_bucket(at, params))
        if bucket is not None and bucket.count >= params.min_samples:
            chosen, seasonal = bucket, True
        else:
            notes = ((f"only {bucket.count if bucket else 0} samples at this time of day so far "
                      f"(need {params.min_samples}); compared with the whole series instead"),)
    if chosen is None or chosen.count < params.min_samples:
        return None, notes
    scale, floored = _floored(math.sqrt(max(chosen.variance, 0.0)), chosen.mean, params)
    return Baseline(chosen.mean, scale, chosen.count, "sigmas", seasonal, floored), notes


def _floored(spread: float, center: float, params: AnomalyParams) -> tuple[float, bool]:
    floor = max(params.min_scale, params.relative_min_scale * abs(center), _TINY)
    return (spread, False) if spread >= floor else (floor, True)


# ---------------------------------------------------------------- transitions


def _fire_or_clear(state: AnomalyState, directed: float, params: AnomalyParams,
                   at: float) -> tuple[AnomalyState, Status, Transition | None]:
    if state.firing:
        if directed < params.clear_threshold:
            return replace(state, firing=False, firing_since=None, pending_since=None), "ok", "cleared"
        return state, "firing", None
    if directed < params.threshold:
        return replace(state, pending_since=None), "ok", None
    since = state.pending_since if state.pending_since is not None else at
    if at - since >= params.for_.total_seconds():
        return replace(state, firing=True, firing_since=at, pending_since=None), "firing", "fired"
    return replace(state, pending_since=since), "pending", None


def _watch_level_shift(state: AnomalyState, value: float, score: float, params: AnomalyParams, at: float,
                       change_at: float | None) -> AnomalyState:
    """Count consecutive post-change samples that sit on one side of the baseline, beyond clearThreshold."""
    if change_at is None or at < change_at or change_at == state.relearned_for:
        return replace(state, change_at=None, shift_sign=0, shifted=()) if state.shifted else state
    if change_at != state.change_at:
        state = replace(state, change_at=change_at, shift_sign=0, shifted=())
    side = 0 if abs(score) < params.clear_threshold else (1 if score > 0 else -1)
    if side == 0:
        return replace(state, shift_sign=0, shifted=())
    kept = state.shifted if side == state.shift_sign else ()
    return replace(state, shift_sign=side, shifted=(*kept, (at, value)))


def _relearn(state: AnomalyState, value: float, score: float, old: Baseline, params: AnomalyParams,
             at: float) -> tuple[AnomalyState, AnomalyVerdict]:
    change_at = state.change_at
    level = statistics.median(v for _, v in state.shifted)
    kept = tuple(s for s in state.samples if s[0] >= change_at) + ((at, value),)
    dropped = len(state.samples) + 1 - len(kept) if params.method == "medianMad" else None
    fresh = AnomalyState(
        samples=kept if params.method == "medianMad" else (),
        last_at=at, relearned_for=change_at,
    )
    if params.method == "ewma":
        for t, v in state.shifted:
            fresh = _learn(fresh, v, params, t, None)
    baseline, _ = baseline_for(fresh, params, at)
    status: Status = "ok" if baseline is not None else "learning"
    was = "; cleared" if state.firing else ""
    forgotten = (f"dropped {dropped} pre-change samples" if dropped is not None
                 else "restarted the averages from the post-change samples")
    explanation = (
        f"baseline re-learned: {params.description} sat at about {_number(level)}{_unit(params)} "
        f"({_number(abs(score))} {old.unit_name} {'above' if score > 0 else 'below'} the old baseline of "
        f"{_number(old.center)}{_unit(params)}) for {len(state.shifted)} evaluations after the change at "
        f"{_clock(change_at)}; {forgotten}{was}"
    )
    verdict = AnomalyVerdict(
        status=status, firing=False, transition="cleared" if state.firing else None, value=value, score=None,
        baseline=None if baseline is None else baseline.center, scale=None if baseline is None else baseline.scale,
        samples=0 if baseline is None else baseline.samples, explanation=explanation, notes=(explanation,),
    )
    return fresh, verdict


def _no_data(state: AnomalyState, sample: object, params: AnomalyParams,
             at: float) -> tuple[AnomalyState, AnomalyVerdict]:
    what = "no sample" if sample is None else f"the sample is {sample!r}"
    keeps = "still firing: a gap is not a recovery" if state.firing else "not firing: a gap is not an anomaly"
    wait = "; the wait for 'for' restarts" if state.pending_since is not None else ""
    explanation = f"no data for {params.description} at {_clock(at)} ({what}): {keeps}{wait}"
    new_state = replace(state, pending_since=None)
    return new_state, AnomalyVerdict(
        status="noData", firing=state.firing, transition=None, value=None, score=None, baseline=None,
        scale=None, samples=0, explanation=explanation,
    )


def _unchanged(state: AnomalyState, explanation: str) -> AnomalyVerdict:
    status: Status = "firing" if state.firing else "pending" if state.pending_since is not None else "ok"
    return AnomalyVerdict(status=status, firing=state.firing, transition=None, value=None, score=None,
                          baseline=None, scale=None, samples=0, explanation=explanation)


def _learning_verdict(state: AnomalyState, value: float, params: AnomalyParams,
                      notes: tuple[str, ...]) -> AnomalyVerdict:
    have = samples_learned(state, params)
    explanation = (f"learning the baseline of {params.description}: {have} of {params.min_samples} "
                   f"samples so far; {_number(value)}{_unit(params)} is not judged")
    return AnomalyVerdict(status="learning", firing=state.firing, transition=None, value=value, score=None,
                          baseline=None, scale=None, samples=have, explanation=explanation, notes=notes)


def samples_learned(state: AnomalyState, params: AnomalyParams) -> int:
    """How many samples the series' baseline holds (ewma: the whole-series average's count)."""
    if params.method == "medianMad":
        return len(state.samples)
    return next((s.count for s in state.ewma if s.bucket == -1), 0)


# ---------------------------------------------------------------- learning


def _learn(state: AnomalyState, value: float, params: AnomalyParams, at: float,
           judged: tuple[Baseline, float, bool] | None) -> AnomalyState:
    """Add the sample to the baseline.

    medianMad keeps every sample (the median shrugs off outliers). ewma does
    not: a sample is clipped to the threshold, and a suspicious one (beyond
    the clear threshold, at least 3 sigmas, or while pending or firing) moves
    the mean only, never the variance, or a sustained anomaly would widen the
    variance until it hid itself.
    """
    if params.method == "medianMad":
        samples = (*state.samples, (at, value))
        return replace(state, samples=samples[-params.sample_cap:])
    widen = True
    if judged is not None:
        baseline, score, anomalous = judged
        widen = not anomalous and abs(score) < max(params.clear_threshold, _WIDEN_GATE)
        if abs(score) > params.threshold:
            value = baseline.center + math.copysign(params.threshold * baseline.scale, score)
    stats = {s.bucket: s for s in state.ewma}
    stats[-1] = _ewma_update(stats.get(-1), -1, value, params.alpha, widen)
    if params.daily_seasonality:
        bucket = _bucket(at, params)
        stats[bucket] = _ewma_update(stats.get(bucket), bucket, value, params.bucket_alpha, widen)
    return replace(state, ewma=tuple(stats[b] for b in sorted(stats)))


def _ewma_update(stats: EwmaStats | None, bucket: int, value: float, alpha: float, widen: bool) -> EwmaStats:
    if stats is None:
        return EwmaStats(bucket, value, 0.0, 1)
    count = stats.count + 1
    # A plain running mean until 1/alpha samples are in: the first samples must not anchor the average.
    weight = max(alpha, 1 / count)
    diff = value - stats.mean
    mean = stats.mean + weight * diff
    variance = (1 - weight) * (stats.variance + weight * diff * diff) if widen else stats.variance
    return EwmaStats(bucket, mean, variance, count)


def _within_lookback(samples: tuple[tuple[float, float], ...], at: float,
                     params: AnomalyParams) -> tuple[tuple[float, float], ...]:
    start = bisect.bisect_left(samples, at - params.lookback.total_seconds(), key=lambda s: s[0])
    return samples[start:] if start else samples


# ---------------------------------------------------------------- words and small helpers


def _explain(value: float, score: float, baseline: Baseline, params: AnomalyParams, status: Status,
             at: float) -> str:
    side = "above" if score >= 0 else "below"
    when = ""
    if baseline.seasonal and params.method == "ewma":
        start = _bucket(at, params) * params.season_bucket.total_seconds()
        end = start + params.season_bucket.total_seconds()
        when = f" for this time of day ({_clock_of_day(start)}–{_clock_of_day(end)} UTC)"
    elif baseline.seasonal:
        when = f" for this time of day ({_clock_of_day(at)} UTC ± {format_duration(params.season_bucket / 2)})"
    kind = "EWMA baseline" if params.method == "ewma" else "baseline"
    text = (f"{params.description} {_number(value)}{_unit(params)} is {_number(abs(score))} "
            f"{baseline.unit_name} {side} its {_span(params.lookback)} {kind}{when} of "
            f"{_number(baseline.center)}{_unit(params)}")
    verdicts = {
        "firing": f"anomalous (fires at {_number(params.threshold)}, clears under "
                  f"{_number(params.clear_threshold)}, direction {params.direction})",
        "pending": f"over the threshold of {_number(params.threshold)}, waiting "
                   f"{format_duration(params.for_)} before firing",
        "ok": f"normal (fires at {_number(params.threshold)}, direction {params.direction})",
    }
    return f"{text}: {verdicts[status]}"


def _span(length: timedelta) -> str:
    """7 days -> "7-day", 6 hours -> "6-hour", otherwise the duration ("90m")."""
    for unit, size in (("day", timedelta(days=1)), ("hour", timedelta(hours=1)), ("minute", timedelta(minutes=1))):
        if length % size == timedelta(0):
            return f"{length // size}-{unit}"
    return format_duration(length)


def _directed(score: float, direction: Direction) -> float:
    return {"up": score, "down": -score, "both": abs(score)}[direction]


def _bucket(at: float, params: AnomalyParams) -> int:
    return int((at % _DAY) // params.season_bucket.total_seconds())


def _time_of_day_distance(a: float, b: float) -> float:
    apart = abs(a % _DAY - b % _DAY)
    return min(apart, _DAY - apart)


def _not_a_number(sample: object) -> bool:
    if sample is None or isinstance(sample, bool) or not isinstance(sample, (int, float)):
        return True
    return not math.isfinite(sample)


def _seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError(f"times must be timezone-aware, got naive {moment.isoformat()}")
    return moment.timestamp()


def _clock(at: float) -> str:
    return format_time(datetime.fromtimestamp(at, UTC))


def _clock_of_day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M")


def _unit(params: AnomalyParams) -> str:
    return f" {params.unit}" if params.unit else ""


_number = significant
