// expect: HAPND001 System.Collections.Immutable.ImmutableHashSet
// why: iterates an ImmutableHashSet: order follows randomized string hashes
using System;
using System.Collections.Generic;
using System.Linq;
using System.Collections.Immutable;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicImmutablehashsetCreateReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var set = ImmutableHashSet.Create("alpha", "bravo", "charlie", "delta");
        s = s with { Note = string.Join(",", set) };
        return s with { Count = s.Count + 1 };
    }
}
