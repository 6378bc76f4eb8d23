// expect: HAPND001 System.Buffers.ArrayPool
// why: rents from the process-wide ArrayPool: buffers may still hold another computation's data
using System;
using System.Collections.Generic;
using System.Linq;
using System.Buffers;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ArraypoolSharedReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        s = s with { Note = Convert.ToBase64String(buffer) };
        ArrayPool<byte>.Shared.Return(buffer);
        return s with { Count = s.Count + 1 };
    }
}
