// expect: HAPND001 System.Threading.Monitor
// why: lock on a static object (Monitor) can block or deadlock other code sharing the worker
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class LockStatementReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        lock (Gate)
        {
            Shared++;
            s = s with { Count = Shared };
        }
        return s with { Count = s.Count + 1 };
    }

    private static readonly object Gate = new();
    private static int Shared;
}
