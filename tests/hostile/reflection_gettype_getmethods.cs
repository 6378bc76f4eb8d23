// expect: HAPND001 System.Object.GetType
// why: uses GetType() to get a System.Type and enumerate/invoke methods by reflection
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ReflectionGettypeGetmethodsReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var methods = @event.GetType().GetMethods();
        s = s with { Note = string.Join(",", methods.Select(m => m.Name)) };
        return s with { Count = s.Count + 1 };
    }
}
