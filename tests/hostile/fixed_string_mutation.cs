// expect: HAPND003 unsafe
// why: pins a string with fixed and overwrites it in place, corrupting an interned string shared with the host
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FixedStringMutationReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var text = "OrderPlaced";
        unsafe
        {
            fixed (char* p = text)
            {
                p[0] = 'X';
            }
        }

        s = s with { Note = text };
        return s with { Count = s.Count + 1 };
    }
}
