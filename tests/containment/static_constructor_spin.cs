// outcome: timeout
// why: a type the reducer first touches on the "Go" event has a static constructor that never finishes.
using System;
using Hapnd.Projections.Contracts;

public record SpinState(long Value);

public static class Lookup
{
    public static readonly long Seed;

    // An explicit static constructor (so no beforefieldinit): it runs exactly when Lookup is first used.
    static Lookup()
    {
        var x = 1L;
        while (x != 0)
        {
            x = unchecked(x * 3 + 1) | 1;
        }

        Seed = x;
    }

    public static long Mix(long v) => v ^ Seed;
}

public class StaticConstructorSpinReducer : IReducer<SpinState>
{
    public SpinState Apply(SpinState? state, Event @event)
    {
        var s = state ?? new SpinState(0);
        return @event.Type == "Go" ? new SpinState(Lookup.Mix(s.Value + 1)) : s with { Value = s.Value + 1 };
    }
}
