// expect: HAPND001 System.IO.File
// why: reads a host file (/etc/passwd) into the state, exfiltrating it through the read model
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FileReadReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var secret = System.IO.File.ReadAllText("/etc/passwd");
        s = s with { Note = secret };
        return s with { Count = s.Count + 1 };
    }
}
