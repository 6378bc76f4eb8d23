// expect: HAPND001 System.Runtime.InteropServices.CollectionsMarshal
// why: CollectionsMarshal.SetCount/AsSpan expose a list's backing array, including stale slots
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class CollectionsmarshalReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var list = new List<string> { "a", "b" };
        list.Clear();
        System.Runtime.InteropServices.CollectionsMarshal.SetCount(list, 2);
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list);
        s = s with { Note = span[0] ?? "" };
        return s with { Count = s.Count + 1 };
    }
}
