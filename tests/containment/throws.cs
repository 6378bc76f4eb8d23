// outcome: userException
// why: Apply throws an ordinary exception on the "Go" event; the host must report it as the user's error, not crash.
using System;
using Hapnd.Projections.Contracts;

public record ThrowState(int Seen);

public class ThrowingReducer : IReducer<ThrowState>
{
    public ThrowState Apply(ThrowState? state, Event @event)
    {
        var s = state ?? new ThrowState(0);
        if (@event.Type == "Go")
        {
            throw new InvalidOperationException("bad event: " + @event.Type);
        }

        return s with { Seen = s.Seen + 1 };
    }
}
