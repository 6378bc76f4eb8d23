// expect: HAPND001 System.DateTimeOffset.UtcNow
// why: reads the wall clock (DateTimeOffset.UtcNow): replays would differ
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicDatetimeoffsetUtcnowReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = DateTimeOffset.UtcNow.ToString("O") };
        return s with { Count = s.Count + 1 };
    }
}
