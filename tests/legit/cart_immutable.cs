using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Hapnd.Projections.Contracts;

public sealed record CartState
{
    public ImmutableSortedDictionary<string, int> Quantities { get; init; } = ImmutableSortedDictionary<string, int>.Empty;
    public ImmutableSortedSet<string> Coupons { get; init; } = ImmutableSortedSet<string>.Empty;
    public ImmutableList<string> Log { get; init; } = ImmutableList<string>.Empty;
    public ImmutableArray<int> QuantityTimeline { get; init; } = ImmutableArray<int>.Empty;
    public bool CheckedOut { get; init; }
}

public record CartItemData(string Sku, int Quantity);

public record CouponData(string Code);

public class CartReducer : IReducer<CartState>
{
    public CartState Apply(CartState? state, Event @event)
    {
        var cart = state ?? new CartState();
        if (cart.CheckedOut)
        {
            return cart;
        }

        cart = cart with { Log = cart.Log.Add($"{@event.Version}:{@event.Type}") };

        switch (@event.Type)
        {
            case "ItemAdded":
            {
                var item = @event.GetData<CartItemData>();
                var quantities = cart.Quantities.SetItem(item.Sku, cart.Quantities.GetValueOrDefault(item.Sku) + item.Quantity);
                return WithQuantities(cart, quantities);
            }
            case "ItemRemoved":
            {
                var item = @event.GetData<CartItemData>();
                return WithQuantities(cart, cart.Quantities.Remove(item.Sku));
            }
            case "CouponApplied":
                return cart with { Coupons = cart.Coupons.Add(@event.GetData<CouponData>().Code.ToUpperInvariant()) };
            case "CheckedOut":
                return cart with { CheckedOut = true };
            default:
                return cart;
        }
    }

    private static CartState WithQuantities(CartState cart, ImmutableSortedDictionary<string, int> quantities) => cart with
    {
        Quantities = quantities,
        QuantityTimeline = cart.QuantityTimeline.Add(quantities.Values.Sum()),
    };
}
