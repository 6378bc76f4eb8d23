// outcome: timeout
// why: Apply spins forever on the first "Go" event; the worker must be killed by its wall-clock/CPU deadline.
using System;
using Hapnd.Projections.Contracts;

public record LoopState(long Counter, long Checksum);

public class InfiniteLoopReducer : IReducer<LoopState>
{
    public LoopState Apply(LoopState? state, Event @event)
    {
        var s = state ?? new LoopState(0, 17);
        if (@event.Type != "Go")
        {
            return s with { Counter = s.Counter + 1 };
        }

        var x = s.Checksum;
        var i = 0L;
        while (true)
        {
            // Real work that depends on the previous iteration, so nothing can be folded away.
            x = unchecked(x * 6364136223846793005L + 1442695040888963407L);
            x ^= x >> 29;
            i++;
            if (x == long.MinValue && i < 0)
            {
                break;
            }
        }

        return s with { Counter = i, Checksum = x };
    }
}
