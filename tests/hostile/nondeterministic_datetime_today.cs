// expect: HAPND001 System.DateTime.Today
// why: reads today's date (DateTime.Today): replays would differ
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicDatetimeTodayReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = DateTime.Today.ToString("O") };
        return s with { Count = s.Count + 1 };
    }
}
