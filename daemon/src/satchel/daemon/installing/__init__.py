"""installing"""
