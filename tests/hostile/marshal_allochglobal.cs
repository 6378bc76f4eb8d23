// expect: HAPND001 System.Runtime.InteropServices.Marshal
// why: allocates native memory and writes far past it: a heap overflow in the worker
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class MarshalAllochglobalReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var p = System.Runtime.InteropServices.Marshal.AllocHGlobal(16);
        System.Runtime.InteropServices.Marshal.WriteInt64(p, 1_000_000, 42);
        s = s with { Count = System.Runtime.InteropServices.Marshal.ReadInt32(p) };
        return s with { Count = s.Count + 1 };
    }
}
