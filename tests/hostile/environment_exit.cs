// expect: HAPND001 System.Environment
// why: kills the worker process (and whatever else it serves) from inside Apply
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class EnvironmentExitReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        if (@event.Type == "Kill")
        {
            Environment.Exit(0);
        }
        return s with { Count = s.Count + 1 };
    }
}
