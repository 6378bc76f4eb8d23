// expect: HAPND001 System.Environment
// why: reads the worker's environment variables (secrets, tokens)
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class EnvironmentGetenvReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var token = Environment.GetEnvironmentVariable("HAPND_SECRET") ?? "";
        s = s with { Note = token };
        return s with { Count = s.Count + 1 };
    }
}
