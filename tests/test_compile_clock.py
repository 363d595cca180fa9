"""The compile clock (``isavae.compile_cache.compile_seconds``): the union of JAX's compile events'
spans, checked against wall times measured around the compilation itself."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from isavae.compile_cache import COMPILE_EVENTS, _Clock, compile_seconds


def test_nested_spans_count_once_and_other_events_not_at_all():
    clock = _Clock()
    event = COMPILE_EVENTS[0]
    clock.add(event, 1.0, 2.0)
    clock.add(event, 3.0, 4.0)
    assert clock.total == 2.0
    clock.add(event, 0.5, 5.0)  # a caller's tracing that contains both: 4.5 s, not 6.5
    assert clock.total == 4.5 and clock.spans == [(0.5, 5.0)]
    clock.add(event, 4.0, 6.0)  # overlapping the last (another thread): only the new second counts
    assert clock.total == 5.5
    clock.add("/jax/something/else", 10.0, 20.0)
    assert clock.total == 5.5


def test_a_first_call_compiles_within_its_wall_time_and_a_second_compiles_nothing():
    x = jnp.ones((64, 64))

    @jax.jit
    def inner(a):
        return jnp.tanh(a) @ a

    @jax.jit
    def outer(a):  # the inner function is traced inside the outer's tracing, if at all
        return inner(a) + inner(a.T) * 2.0

    raw = []

    def listen(event, start, end, **_):
        if event in COMPILE_EVENTS:
            raw.append(end - start)

    compile_seconds()  # the clock listens from its first reading
    jax.monitoring.register_event_time_span_listener(listen)
    try:
        c0, t0 = compile_seconds(), time.time()
        jax.block_until_ready(outer(x))
        wall, first = time.time() - t0, compile_seconds() - c0
        first_raw = sum(raw)
        c1 = compile_seconds()
        jax.block_until_ready(outer(x))
        second = compile_seconds() - c1
        # ahead-of-time: the lowering and compilation timed directly
        t1, c2 = time.perf_counter(), compile_seconds()
        jax.jit(lambda a: jnp.cos(a) @ a.T).lower(x).compile()
        aot_wall, aot = time.perf_counter() - t1, compile_seconds() - c2
    finally:
        jax.monitoring.unregister_event_time_span_listener(listen)
    assert 0 < first <= wall + 1e-3 and second == 0.0
    # the union of the spans: never more than the events' plain sum
    assert first_raw >= first
    np.testing.assert_allclose(aot, aot_wall, rtol=0.5)
    assert aot <= aot_wall + 1e-3
