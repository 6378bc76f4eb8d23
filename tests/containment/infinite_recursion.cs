// outcome: crash
// why: unbounded recursion on the first "Go" event overflows the stack, which kills the worker process outright.
using System;
using Hapnd.Projections.Contracts;

public record RecursionState(long Depth);

public class InfiniteRecursionReducer : IReducer<RecursionState>
{
    public RecursionState Apply(RecursionState? state, Event @event)
    {
        var s = state ?? new RecursionState(0);
        if (@event.Type != "Go")
        {
            return s;
        }

        return new RecursionState(Descend(s.Depth + 1, @event.GlobalPosition));
    }

    // Not a tail call: the result is used after the recursive call returns, and each frame holds locals.
    private static long Descend(long depth, long salt)
    {
        var a = depth ^ salt;
        var b = a * 31 + depth;
        var below = Descend(depth + 1, b);
        return below + a - b;
    }
}
