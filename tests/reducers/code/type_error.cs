// A reducer with one deliberate compile error: CS0029 (a string where an int is expected) at the string literal
// assigned to `step` below; the test finds that literal's line and column in this file and expects exactly those.
using Hapnd.Projections.Contracts;

public record CountState(int Count);

public class CountReducer : IReducer<CountState>
{
    public CountState Apply(CountState? state, Event @event)
    {
        int step = "one";
        return new CountState((state?.Count ?? 0) + step);
    }
}
