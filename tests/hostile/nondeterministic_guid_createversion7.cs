// expect: HAPND001 System.Guid.CreateVersion7
// why: Guid.CreateVersion7(): a time-based and random id on every replay
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicGuidCreateversion7Reducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = Guid.CreateVersion7().ToString() };
        return s with { Count = s.Count + 1 };
    }
}
