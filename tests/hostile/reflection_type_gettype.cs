// expect: HAPND001 System.Type
// why: resolves a banned type by name string (Type.GetType) and invokes it by reflection
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ReflectionTypeGettypeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var fileType = Type.GetType("System.IO.File, System.Private.CoreLib");
        var read = fileType?.GetMethod("ReadAllText", [typeof(string)]);
        var text = (string?)read?.Invoke(null, ["/etc/passwd"]);
        s = s with { Note = text ?? "" };
        return s with { Count = s.Count + 1 };
    }
}
