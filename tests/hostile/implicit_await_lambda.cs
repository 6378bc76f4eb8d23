// expect: HAPND001 System.Threading.Tasks
// why: async lambdas held in var: Task<T> and the async state machine appear only through await and the lambda's natural type
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ImplicitAwaitLambdaReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var inner = async () => @event.Version;
        var outer = async () => await inner() + 1;
        s = s with { Count = (int)outer().Result };
        return s with { Count = s.Count + 1 };
    }
}
