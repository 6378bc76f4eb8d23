// expect: HAPND001 System.Collections.Immutable.ImmutableHashSet
// why: foreach over ToImmutableHashSet(): iteration order follows randomized string hashes, with the type never written
using System;
using System.Collections.Generic;
using System.Linq;
using System.Collections.Immutable;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ImplicitForeachImmutablehashsetReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var names = new List<string> { "alpha", "bravo", "charlie", "delta" };
        var first = "";
        foreach (var name in names.ToImmutableHashSet())
        {
            first = name;
            break;
        }

        s = s with { Note = first };
        return s with { Count = s.Count + 1 };
    }
}
