// expect: HAPND001 System.Guid.NewGuid
// why: Guid.NewGuid(): a fresh random id on every replay
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicGuidNewguidReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = Guid.NewGuid().ToString() };
        return s with { Count = s.Count + 1 };
    }
}
