// expect: HAPND001 System.Type
// why: typeof(...).GetMethod(...).Invoke to call methods chosen at run time
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ReflectionTypeofGetmethodReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var concat = typeof(string).GetMethod("Concat", [typeof(string), typeof(string)]);
        var joined = (string?)concat!.Invoke(null, ["a", "b"]);
        s = s with { Note = joined ?? "" };
        return s with { Count = s.Count + 1 };
    }
}
