// expect: HAPND001 System.DateTime.UtcNow
// why: reads the wall clock (DateTime.UtcNow): replays would differ
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicDatetimeUtcnowReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = DateTime.UtcNow.ToString("O") };
        return s with { Count = s.Count + 1 };
    }
}
