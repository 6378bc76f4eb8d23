// expect: HAPND001 System.DateTimeOffset.Now
// why: reads the local wall clock (DateTimeOffset.Now): replays would differ
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicDatetimeoffsetNowReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = DateTimeOffset.Now.ToString("O") };
        return s with { Count = s.Count + 1 };
    }
}
