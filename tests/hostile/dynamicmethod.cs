// expect: HAPND001 System.Reflection.Emit.DynamicMethod
// why: emits raw IL with DynamicMethod and runs it
using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection.Emit;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class DynamicmethodReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var dm = new DynamicMethod("Answer", typeof(int), Type.EmptyTypes);
        var il = dm.GetILGenerator();
        il.Emit(OpCodes.Ldc_I4, 42);
        il.Emit(OpCodes.Ret);
        var answer = (Func<int>)dm.CreateDelegate(typeof(Func<int>));
        s = s with { Count = answer() };
        return s with { Count = s.Count + 1 };
    }
}
