// expect: HAPND003 function pointer
// why: a function pointer (delegate*) is cast from an integer and called: a jump to an arbitrary address
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FunctionPointerReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        unsafe
        {
            delegate*<int, int> twice = &Twice;
            var r = twice(21);
            if (@event.Type == "Jump")
            {
                var anywhere = (delegate*<int, int>)(nint)0x0badf00d;
                r = anywhere(r);
            }

            s = s with { Count = r };
        }
        return s with { Count = s.Count + 1 };
    }

    private static int Twice(int x) => x * 2;
}
