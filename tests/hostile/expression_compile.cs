// expect: HAPND001 System.Linq.Expressions.Expression
// why: compiles an expression tree to IL at run time: code the allowlist never saw
using System;
using System.Collections.Generic;
using System.Linq;
using System.Linq.Expressions;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ExpressionCompileReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        Expression<Func<int>> expr = () => 42;
        var compiled = expr.Compile();
        s = s with { Count = compiled() };
        return s with { Count = s.Count + 1 };
    }
}
