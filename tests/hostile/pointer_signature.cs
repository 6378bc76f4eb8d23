// expect: HAPND003 unsafe
// why: a method with a pointer parameter reads arbitrary memory
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class PointerSignatureReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        if (@event.Type == "Peek")
        {
            s = s with { Count = (int)PeekAt(0x1000) };
        }
        return s with { Count = s.Count + 1 };
    }

    private static unsafe long Peek(long* address, int index) => address[index];

    private static unsafe long PeekAt(nint raw) => Peek((long*)raw, 0);
}
