// expect: HAPND010 extern alias
// why: extern alias asks for a second copy of a reference under an alias, to reach types outside the allowlisted set
extern alias CoreLib;

using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ExternAliasReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var text = CoreLib::System.IO.File.ReadAllText("/etc/passwd");
        return s with { Count = s.Count + 1, Note = text };
    }
}
