// expect: HAPND001 System.Runtime.InteropServices.StructLayoutAttribute
// why: an explicit-layout struct overlaps two reference fields: writes a string, reads it as another type (type confusion)
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

[StructLayout(LayoutKind.Explicit)]
public struct Confuser
{
    [FieldOffset(0)] public string? Text;
    [FieldOffset(0)] public AttackState? State;
}

public class ExplicitLayoutUnionReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var u = new Confuser { Text = @event.AggregateId };
        var forged = u.State;
        s = s with { Note = forged?.Note ?? "" };
        return s with { Count = s.Count + 1 };
    }
}
