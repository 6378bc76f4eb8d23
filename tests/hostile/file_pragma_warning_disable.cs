// expect: HAPND001 System.IO.File
// why: hides a banned call behind #pragma warning disable of the gate's own diagnostic ids
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FilePragmaWarningDisableReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        #pragma warning disable HAPND001, CS0618, CA2000
        var text = System.IO.File.ReadAllText("/etc/shadow");
        #pragma warning restore HAPND001, CS0618, CA2000
        s = s with { Note = text };
        return s with { Count = s.Count + 1 };
    }
}
