// expect: HAPND001 System.Runtime.CompilerServices.Unsafe
// why: Unsafe.As reinterprets an Event as an unrelated type: type confusion, arbitrary memory reads
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class UnsafeAsReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        object boxed = @event;
        var confused = System.Runtime.CompilerServices.Unsafe.As<AttackState>(boxed);
        s = s with { Note = confused.Note };
        return s with { Count = s.Count + 1 };
    }
}
