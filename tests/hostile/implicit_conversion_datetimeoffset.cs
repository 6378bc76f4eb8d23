// expect: HAPND001 System.DateTimeOffset.op_Implicit
// why: DateTime to DateTimeOffset implicit conversion uses the machine's local time zone; the subtraction leaks the host offset
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ImplicitConversionDatetimeoffsetReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var skew = @event.Timestamp - @event.Timestamp.DateTime;
        s = s with { Note = skew.ToString() };
        return s with { Count = s.Count + 1 };
    }
}
