// expect: HAPND001 System.Runtime.InteropServices.MemoryMarshal
// why: MemoryMarshal turns a string's read-only memory writable and mutates an interned string
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class MemorymarshalStringReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var text = "OrderPlaced";
        var writable = System.Runtime.InteropServices.MemoryMarshal.AsMemory(text.AsMemory());
        writable.Span[0] = 'X';
        s = s with { Note = text };
        return s with { Count = s.Count + 1 };
    }
}
