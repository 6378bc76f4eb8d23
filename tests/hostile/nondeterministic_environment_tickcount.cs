// expect: HAPND001 System.Environment
// why: Environment.TickCount: milliseconds since boot
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicEnvironmentTickcountReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = Environment.TickCount % 1000 };
        return s with { Count = s.Count + 1 };
    }
}
