// expect: HAPND001 System.Object.GetHashCode
// why: object.GetHashCode() on a fresh object is an identity hash that differs per run
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicObjectGethashcodeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = new object().GetHashCode() };
        return s with { Count = s.Count + 1 };
    }
}
