// expect: HAPND003 stackalloc
// why: stackalloc of 64 MB overflows the stack (and stackalloc'd memory is uninitialised without SkipLocalsInit checks)
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class StackallocHugeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        Span<byte> buffer = stackalloc byte[64 * 1024 * 1024];
        buffer[^1] = 1;
        s = s with { Count = buffer[^1] };
        return s with { Count = s.Count + 1 };
    }
}
