// expect: HAPND001 System.IO.FileStream
// why: opens a FileStream on /proc/self/environ to read the worker's environment
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FilestreamReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        using (var fs = new System.IO.FileStream("/proc/self/environ", System.IO.FileMode.Open))
        {
            s = s with { Count = (int)fs.Length };
        }
        return s with { Count = s.Count + 1 };
    }
}
